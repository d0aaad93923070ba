"""The training step of a layout: the loss constrained to the plan, the step jitted with it.

Two pieces, composed with :func:`funcnn.train.make_step` (so the engine, ``"hand"`` or
``"jax"``, and the optimizer, hand SGD or Optax, are chosen as for one device):

1. :func:`sharded_loss` puts ``with_sharding_constraint`` on the parameters and the batch
   *inside* the differentiated function. The engine's rule for a sharding constraint gives
   the cotangent the same constraint, so every gradient comes out sharded like its
   parameter (FSDP: reduce-scattered, never gathered whole);
2. :func:`jit_step` jits ``step(params, opt_state, batch) -> (params, opt_state, loss)``
   with the plan's shardings in and out: updated parameters and optimizer state keep the
   parameters' layout, the loss is replicated.

    >>> plan = make_plan("fsdp", mesh, jax.eval_shape(model.init, key))
    >>> params = init_sharded(model.init, key, plan)
    >>> opt_state = init_state(opt, params, plan)
    >>> step = jit_step(make_step(sharded_loss(model.loss, plan), opt, "hand"), plan, opt_state)
    >>> params, opt_state, loss = step(params, opt_state, (x, y))   # x: [batch, ...]
"""
import functools

import jax

from funcnn.parallel.layouts import (
    batch_sharding,
    check_batch,
    param_shardings,
    replicated_sharding,
    state_shardings,
)


def sharded_loss(loss_fn, plan):
    """``loss_fn(params, batch, ...)`` with ``params`` and ``batch`` constrained to ``plan``.

    The batch's first axis must split over the plan's data axis (a ``ValueError`` says so
    while tracing, before anything runs).
    """
    params_sharding, batch_leaf = param_shardings(plan), batch_sharding(plan)

    @functools.wraps(loss_fn)
    def loss(params, batch, *args, **kwargs):
        check_batch(batch, plan, f"layout {plan.layout!r}")
        params = jax.lax.with_sharding_constraint(params, params_sharding)
        batch = jax.lax.with_sharding_constraint(
            batch, jax.tree.map(lambda _: batch_leaf, batch))
        return loss_fn(params, batch, *args, **kwargs)

    return loss


def sharded_model(model, plan):
    """``model`` (a ``funcnn.models.Model``) whose loss is :func:`sharded_loss`: with
    ``funcnn.train.train`` unchanged, the jitted step then computes on the plan's layout
    (the batch is fed whole and split inside)."""
    return model._replace(loss=sharded_loss(model.loss, plan))


def jit_step(step, plan, opt_state, donate=False):
    """``step(params, opt_state, batch) -> (params, opt_state, loss)`` jitted with ``plan``'s
    shardings for parameters, optimizer state (see ``state_specs``; ``opt_state`` gives
    its structure: arrays or shapes) and batch; the loss replicated.

    ``donate``: let the outputs reuse the parameters' and state's buffers. The returned
    function checks the batch splits over the data axis, then runs; its ``.lower`` is the
    jitted function's (for ``.lower(...).compile().memory_analysis()``).
    """
    params_sh, state_sh = param_shardings(plan), state_shardings(plan, opt_state)
    jitted = jax.jit(step, in_shardings=(params_sh, state_sh, batch_sharding(plan)),
                     out_shardings=(params_sh, state_sh, replicated_sharding(plan)),
                     donate_argnums=(0, 1) if donate else ())

    @functools.wraps(step)
    def sharded_step(params, opt_state, batch):
        check_batch(batch, plan)
        return jitted(params, opt_state, batch)

    sharded_step.lower = jitted.lower
    sharded_step.jitted = jitted
    return sharded_step


def init_sharded(init_fn, key, plan):
    """``init_fn(key)`` (parameters) computed directly into ``plan``'s layout: no device
    ever holds the whole tree (jitted with the parameters' shardings out)."""
    return jax.jit(init_fn, out_shardings=param_shardings(plan))(key)


def init_state(optimizer, params, plan):
    """``optimizer.init(params)`` in the layout of ``state_specs``."""
    shapes = jax.eval_shape(optimizer.init, params)
    return jax.jit(optimizer.init, out_shardings=state_shardings(plan, shapes))(params)

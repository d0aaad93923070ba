"""The golden-file format's name and its tolerance rule, as written into every manifest.

``docs/oracle-format.md`` is the full description of format ``funcnn-oracle/1``; version 1
may gain fields, keys and cases, and never renames one or changes its meaning.
"""

FORMAT = "funcnn-oracle/1"
TOLERANCE_RULE = ("an entry passes when |result - golden| <= atol + rtol * |golden|, with rtol "
                  "the case's tolerance.rtol and atol the key's own arrays[key].atol (else "
                  "the case's tolerance.atol); a NaN fails; max_rel in reports is "
                  "|result - golden| / (|golden| + atol / rtol), so a key passes exactly when "
                  "max_rel <= rtol (docs/oracle-format.md)")

#!/usr/bin/env bash
# The demo script of `make demo` runs without error and shows the worked examples' totals.
source "$(dirname "$0")/../tools/integration_lib.sh"
dropdb --if-exists dc_demo
createdb dc_demo
out="$(psql -X -v ON_ERROR_STOP=1 -d dc_demo -f "$(dirname "$0")/../demo.sql")"
echo "$out"
check "worked G-Counter example: {A: 5, B: 3, C: 7}, total 15" "yes" \
    "$(grep -Eq '\{"A": 5, "B": 3, "C": 7\} +\| +15$' <<<"$out" && echo yes || echo no)"
check "worked PN-Counter example: value 20" "yes" \
    "$(grep -Eq '\{"A": \[10, 2\], "B": \[5, 1\], "C": \[8, 0\]\} +\| +20$' <<<"$out" && echo yes || echo no)"
check "three regions merge to 2430 likes" "yes" \
    "$(grep -Eq '"virginia": \[800, 0\]\} +\| +2430$' <<<"$out" && echo yes || echo no)"
check "HyperLogLog weekly uniques of page 1 within 2% of the exact 40,000" "yes" \
    "$(awk -F'|' '$1 ~ /^ +1 +$/ && $3 ~ /40000/ { d = $2 - 40000; if (d < 0) d = -d; print (d <= 800 ? "yes" : "no") }' <<<"$out")"
check "LWW-Register: Bob wins over Alice, and the merge reports Alice dropped" "yes" \
    "$(grep -Eq '^ +"Bob" +\| +"Alice" +\| +a$' <<<"$out" && echo yes || echo no)"
check "LWW-Register: the update from the clock that is behind wins" "yes" \
    "$(grep -Eq '^ +\{"name": "Bob"\} +\| +1$' <<<"$out" && echo yes || echo no)"
check "OR-Set: the concurrent add of milk survives the remove; bread, removed after being seen, is gone" "yes" \
    "$(grep -Eq '^ +\{eggs,milk\}$' <<<"$out" && echo yes || echo no)"
dropdb dc_demo
finish

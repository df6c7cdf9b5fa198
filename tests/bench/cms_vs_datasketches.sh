#!/usr/bin/env bash
# Heavy hitters and point estimates of cms against Apache DataSketches' frequent_items and
# count_min on the same Zipf streams (s = 0.8, 1.1, 1.5; 2,000,000 events over 200,000 keys),
# one sketch and the union of 50 partition sketches: bytes, recall of the true top 10 and top
# 100, error on keys with at least 100 events. See cms_vs_datasketches.py.
# Usage: cms_vs_datasketches.sh [extra arguments of cms_vs_datasketches.py, e.g. --seeds 1,2,3]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
export CMS_DS_DB=cms_vs_datasketches
datasketches_cluster cmsds "$CMS_DS_DB"
python3 "$(dirname "$0")/cms_vs_datasketches.py" "$@"
dropdb "$CMS_DS_DB"

# Sourced by the benchmarks in tests/bench/: helpers they share.

# median: the median of the numbers on standard input, one a line.
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# median_of FILE NAME: the median of the second field of the lines of FILE whose first field is NAME.
median_of() { awk -v name="$2" '$1 == name {print $2}' "$1" | median; }

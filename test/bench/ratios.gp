# The benchmark's chart: each case's per-row time as a ratio to its floor
# (log scale), function level and ingest level side by side; dashed red
# marks are the targets.  Called by test/bench/run.sh:
#   gnuplot -e "datafile='...'; outfile='...'; charttitle='...'" ratios.gp
# datafile: x <tab> case <tab> ratio <tab> level (0 function, 1 ingest) <tab> target or NaN
set terminal pngcairo size 1280,680 font "sans,10" noenhanced
set output outfile
set datafile separator "\t"
set title charttitle . "\nper-row time / PostgreSQL's floor (lower is better; log scale)"
set logscale y
set yrange [0.5:*]
set grid ytics
set ylabel "ratio to the floor"
set xtics rotate by -35 nomirror
set ytics nomirror
set style fill solid 0.85 border -1
set boxwidth 0.75
set key top center
set bmargin 9
set rmargin 14
set label 1 "function level: SELECT f(doc)\nfloor = doc - '{key1,...,key5}'" at graph 0.02, graph 0.93 left
set label 2 "ingest level: COPY into a daily-partitioned table\nfloor = plain COPY, no trigger" at graph 0.62, graph 0.93 left
plot datafile using 1:3:($4 == 0 ? 0x4477aa : 0xcc7733):xtic(2) with boxes lc rgb variable notitle, \
     '' using 1:3:(sprintf("%.2f", $3)) with labels offset 0,0.8 notitle, \
     '' using ($1 - 0.45):5:(0.9):(0) with vectors nohead dt 1 lw 3 lc rgb "red" title "target", \
     1 with lines dt 3 lw 1.5 lc rgb "black" title "floor (1.0)"

# Rendered by experiments/ (run: cd experiments/results/exp2-restart && gnuplot exp2-restart.gp)
set terminal pngcairo size 1000,650 enhanced font 'Sans,10'
set output 'exp2-restart.png'

set logscale x
# 10k, 100k, 1M: full numbers at the right edge were cut off; a margin on both sides.
set format x '%.0s%c'
set offsets graph 0.04, graph 0.04, 0, 0
set grid lc rgb '#dddddd'
set xlabel 'keys in the store (4 KiB values)'
set key top left font ',8' box opaque
set multiplot layout 1,2 title 'Experiment 2: restart after SIGKILL, and cold vs warm gets (OS page cache dropped before cold restarts)'
set title 'process start -> first get answered (median of 5)'
set ylabel 'ms (log scale)'
set logscale y
set yrange [0.1:3000]
plot 'exp2-restart.dat' u 1:2 w lp lw 2 pt 7 lc rgb '#1f77b4' t 'lbkv, cold page cache', \
     '' u 1:3 w lp lw 2 pt 5 lc rgb '#ff7f0e' t 'lbkv, warm page cache', \
     '' u 1:4 w lp lw 1 pt 2 lc rgb '#2ca02c' t 'lbkv ready line (all restarts, median)', \
     '' u 1:13 w lp lw 1 pt 9 lc rgb '#9467bd' t 'lbserver ready, by its own clock (Stat startup\_ms)', \
     '' u 1:14 w lp lw 2 pt 13 lc rgb '#8c564b' t 'engine alone: Store.open + 1 get, cold page cache', \
     '' u 1:5 w l dt 2 lw 2 lc rgb '#555555' t 'floor: bare gRPC server process, start -> first get'
set title 'first 500 gets after a cold restart vs on the long-running server'
set ylabel 'get latency (ms)'
set yrange [*:*]
plot 'exp2-restart.dat' u 1:7 w lp lw 2 pt 7 lc rgb '#1f77b4' t 'cold p50', \
     '' u 1:8 w lp lw 2 pt 9 lc rgb '#1f77b4' dt 4 t 'cold p99', \
     '' u 1:6 w lp lw 1 pt 6 lc rgb '#1f77b4' dt 2 t 'cold mean', \
     '' u 1:10 w lp lw 2 pt 5 lc rgb '#ff7f0e' t 'warm p50', \
     '' u 1:11 w lp lw 2 pt 11 lc rgb '#ff7f0e' dt 4 t 'warm p99', \
     '' u 1:9 w lp lw 1 pt 4 lc rgb '#ff7f0e' dt 2 t 'warm mean'
unset multiplot

# Rendered by experiments/ (run: cd experiments/results/exp1-latency && gnuplot exp1-latency.gp)
set terminal pngcairo size 1000,650 enhanced font 'Sans,10'
set output 'exp1-latency.png'

set datafile missing '?'
set logscale xy
set grid xtics ytics mxtics mytics lc rgb '#dddddd'
set xlabel 'value size (bytes)'
set ylabel 'latency (ms)'
set xtics ('512 B' 512, '4 KiB' 4096, '32 KiB' 32768, '512 KiB' 524288, '1 MiB' 1048576, '4 MiB' 4194304) rotate by -35 font ',8'
set xrange [256:8388608]
set key top left font ',8' box opaque
set multiplot layout 1,2 title 'Experiment 1: latency vs value size (one client, 127.0.0.1; lbkv solid, floor = bare gRPC + Map dashed)'
set title 'read-only'
plot 'exp1-latency.dat' u 1:2 w lp lw 2 pt 7 lc rgb '#1f77b4' t 'lbkv mean', \
     '' u 1:3 w lp lw 2 pt 5 lc rgb '#2ca02c' t 'lbkv p50', \
     '' u 1:4 w lp lw 2 pt 9 lc rgb '#d62728' t 'lbkv p99', \
     '' u 1:8 w lp dt 2 pt 6 lc rgb '#1f77b4' t 'floor mean', \
     '' u 1:9 w lp dt 2 pt 4 lc rgb '#2ca02c' t 'floor p50', \
     '' u 1:10 w lp dt 2 pt 8 lc rgb '#d62728' t 'floor p99', \
     '' u 1:18 w l dt 3 lw 2 lc rgb '#555555' t 'one fdatasync 4 KiB (p50)'
set title '50 % get / 50 % set'
plot 'exp1-latency.dat' u 1:5 w lp lw 2 pt 7 lc rgb '#1f77b4' t 'lbkv mean', \
     '' u 1:6 w lp lw 2 pt 5 lc rgb '#2ca02c' t 'lbkv p50', \
     '' u 1:7 w lp lw 2 pt 9 lc rgb '#d62728' t 'lbkv p99', \
     '' u 1:15 w lp lw 1 pt 2 lc rgb '#9467bd' t 'lbkv set p50', \
     '' u 1:11 w lp dt 2 pt 6 lc rgb '#1f77b4' t 'floor mean', \
     '' u 1:12 w lp dt 2 pt 4 lc rgb '#2ca02c' t 'floor p50', \
     '' u 1:13 w lp dt 2 pt 8 lc rgb '#d62728' t 'floor p99', \
     '' u 1:18 w l dt 3 lw 2 lc rgb '#555555' t 'one fdatasync 4 KiB (p50)'
unset multiplot

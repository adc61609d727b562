# Rendered by experiments/ (run: cd experiments/results/exp3-clients && gnuplot exp3-clients-throughput.gp)
set terminal pngcairo size 1000,650 enhanced font 'Sans,10'
set output 'exp3-clients-throughput.png'

set datafile missing '?'
set grid lc rgb '#dddddd'
set logscale x 2
set xlabel 'concurrent clients'
set ylabel 'throughput (operations/s, all clients)'
set yrange [0:*]
set key bottom right font ',9'
set title 'Experiment 3: throughput vs clients (4 KiB values, 2 shared cores)'
plot 'exp3-clients.dat' index 0 u 1:2 w lp lw 2 pt 7 lc rgb '#1f77b4' t 'lbkv read-only', \
     '' index 1 u 1:2 w lp lw 2 pt 5 lc rgb '#d62728' t 'lbkv 50/50', \
     '' index 2 u 1:2 w lp dt 2 pt 6 lc rgb '#1f77b4' t 'floor (gRPC + Map) read-only', \
     '' index 3 u 1:2 w lp dt 2 pt 4 lc rgb '#d62728' t 'floor (gRPC + Map) 50/50'

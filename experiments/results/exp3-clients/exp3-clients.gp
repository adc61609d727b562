# Rendered by experiments/ (run: cd experiments/results/exp3-clients && gnuplot exp3-clients.gp)
set terminal pngcairo size 1000,650 enhanced font 'Sans,10'
set output 'exp3-clients.png'

set datafile missing '?'
set grid lc rgb '#dddddd'
set xlabel 'throughput (operations/s, all clients)'
set logscale y
set key top left font ',9'
set label 1 'labels: number of clients' at graph 0.99, graph 0.03 right font ',8'

set title 'Experiment 3: mean latency vs throughput, 1, 2, 4, ... clients (4 KiB values, 2 cores shared by the servers and the clients)'
set ylabel 'mean latency (ms)'
plot 'exp3-clients.dat' index 0 u 2:3 w lp lw 2 pt 7 lc rgb '#1f77b4' t 'lbkv read-only', \
     '' index 0 u 2:3:(sprintf('%d',$1)) w labels offset 0,0.8 font ',7' tc rgb '#1f77b4' notitle, \
     '' index 1 u 2:3 w lp lw 2 pt 5 lc rgb '#d62728' t 'lbkv 50/50', \
     '' index 1 u 2:3:(sprintf('%d',$1)) w labels offset 0,-0.8 font ',7' tc rgb '#d62728' notitle, \
     '' index 2 u 2:3 w lp dt 2 pt 6 lc rgb '#1f77b4' t 'floor (gRPC + Map) read-only', \
     '' index 2 u 2:3:(sprintf('%d',$1)) w labels left offset 0.7,0 font ',7' tc rgb '#7f9fbf' notitle, \
     '' index 3 u 2:3 w lp dt 2 pt 4 lc rgb '#d62728' t 'floor (gRPC + Map) 50/50', \
     '' index 3 u 2:3:(sprintf('%d',$1)) w labels left offset 0.7,0 font ',7' tc rgb '#cf8f8f' notitle, \
     0.133 w l dt 3 lw 2 lc rgb '#555555' t 'one fdatasync 4 KiB (p50)'

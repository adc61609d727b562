# Rendered by experiments/ (run: cd experiments/results/long-reader && gnuplot long-reader.gp)
set terminal pngcairo size 1000,650 enhanced font 'Sans,10'
set output 'long-reader.png'

set grid lc rgb '#dddddd'
set xlabel 'commits since the snapshot was taken'
set xtics rotate by -45 font ',8'
set key top left font ',8' box opaque
set arrow from 8000, graph 0 to 8000, graph 1 nohead dt 2 lc rgb '#555555'
set label 'snapshot released' at 8000, graph 0.5 offset 1,0 font ',8'
set multiplot layout 1,3 title 'One read snapshot held over 8000 commits of four 4 KiB puts, then released'
set title 'time per commit'
set ylabel 'ms'
plot 'long-reader.dat' u 1:2 w lp lw 2 pt 7 lc rgb '#1f77b4' t 'this build (4bca13a)', 'compare.dat' u 1:2 w lp lw 2 pt 5 lc rgb '#d62728' t 'format4-163b1d2'
set title 'pages written per commit'
set ylabel 'pages'
plot 'long-reader.dat' u 1:3 w lp lw 2 pt 7 lc rgb '#1f77b4' t 'this build (4bca13a)', 'compare.dat' u 1:3 w lp lw 2 pt 5 lc rgb '#d62728' t 'format4-163b1d2'
set title 'data file size'
set ylabel 'MB'
plot 'long-reader.dat' u 1:4 w lp lw 2 pt 7 lc rgb '#1f77b4' t 'this build (4bca13a)', 'compare.dat' u 1:4 w lp lw 2 pt 5 lc rgb '#d62728' t 'format4-163b1d2'
unset multiplot

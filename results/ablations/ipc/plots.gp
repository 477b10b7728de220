# written by clpdd report; run: gnuplot plots.gp
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) { set terminal pngcairo size 1000,600 } else { set terminal png size 1000,600 }
set datafile separator '\t'
set grid ytics
set output 'accuracy.png'
set title 'Accuracy per cell (mean ± std over seeds; dashed: random real images)'
set ylabel 'top-1 accuracy (%)'
set xtics rotate by -35 left noenhanced font ',8'
set bmargin 12
set xrange [-0.6:15.6]
set boxwidth 0.6
set style fill solid 0.4
plot 'plot-cells.tsv' using 1:3:xtic(2) with boxes notitle, '' using 1:3:4 with yerrorbars lc black pt 7 notitle, '' using 1:6 with points pt 2 lc rgb 'red' title 'random real'
set output 'accuracy-vs-time.png'
set title 'Accuracy against time per step'
set xlabel 'ms / step'
set ylabel 'top-1 accuracy (%)'
set xtics norotate
set bmargin
set autoscale x
set logscale x
plot 'plot-cells.tsv' using 5:3:4 with yerrorbars pt 7 notitle, '' using 5:3:2 with labels noenhanced font ',7' offset 0,1 notitle
unset logscale x
unset xlabel

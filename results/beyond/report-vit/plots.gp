# written by clpdd report; run: gnuplot plots.gp
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) { set terminal pngcairo size 1000,600 } else { set terminal png size 1000,600 }
set datafile separator '\t'
set grid ytics
set output 'accuracy.png'
set title 'Top-1 test accuracy per cell: mean ± std over seeds; dashes: random real images'
set ylabel 'top-1 test accuracy (%)'
set yrange [0:100]
set ytics 10
set xlabel "ipc / lambda / learn_prior / labels" noenhanced
set xtics nomirror scale 0 rotate by -30 left noenhanced font ',10'
set key outside top center horizontal noenhanced
set xrange [-0.6:9.6]
set boxwidth 0.60
set style fill solid 0.6 border -1
plot 'plot-cells.tsv' using ($1-0.00):3 with boxes lc rgb '#4c72b0' title 'accuracy', '' using ($1-0.00):3:4 with yerrorbars lc rgb 'black' pt 7 ps 0.4 notitle, '' using ($1-0.00-0.30):6:(0.60):(0) with vectors nohead dt 2 lw 2 lc rgb 'black' title 'random real images', '' using 1:3:xtic(2) with points ps 0 notitle
unset xlabel
set xtics norotate scale default
unset yrange
set ytics autofreq
set key default
set xrange [24.9333:931.216]
set output 'accuracy-vs-time.png'
set title 'Top-1 test accuracy against time per distillation step (mean ± std over seeds)'
set xlabel 'ms / step (log scale)'
set ylabel 'top-1 test accuracy (%)'
set logscale x
set offsets 0, 0, graph 0.1, graph 0.05
plot 'plot-cells.tsv' using 5:3:4 with yerrorbars lc rgb '#4c72b0' pt 7 ps 1.2 notitle, '' using 5:3:2 with labels noenhanced font ',9' offset 0,1.2 notitle
unset logscale x
unset xlabel
set offsets
set output 'tau-lambda.png'
set title 'Accuracy (%) over loss.temperature x solver.lambda (mean over the other keys)'
set xlabel 'loss.temperature'
set ylabel 'solver.lambda'
set xtics ("learn" 0, "0.03" 1, "0.1" 2)
set ytics ("learn" 0, "0.3" 1, "1" 2)
set xrange [-0.5:2.5]
set yrange [-0.5:2.5]
set palette rgbformulae 33,13,10
unset grid
plot 'plot-tau-lambda.tsv' using 1:2:3 with image notitle, '' using 1:2:(sprintf('%.1f', $3)) with labels notitle

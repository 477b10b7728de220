# Issue 23's figure from bars.tsv (results/beyond/table.py): test accuracy per arm, one bar per
# encoder and IPC, mean ± std over seeds.   gnuplot -e "dir='results/beyond'" results/beyond/plot.gp
if (!exists("dir")) dir = "results/beyond"
set terminal pngcairo size 1400,620 font "sans,10"
set output dir."/beyond.png"
set datafile separator "\t"
set datafile missing "nan"
set style data histogram
set style histogram errorbars gap 1.5 lw 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set ylabel "test accuracy % (converged probe)"
set yrange [0:85]
set grid ytics
set key top right
set bmargin 7
set lmargin 10
set xtics rotate by -25 scale 0
set title "Fashion-MNIST: default τ/λ, the grid's validation-selected cell, learned τ/λ, learned labels, and the baselines (3 seeds)"
plot for [i=0:3] dir."/bars.tsv" using (column(2+2*i)):(column(3+2*i)):xtic(1) title columnhead(2+2*i)

/* OpenBLAS 0.3.21 (pthread) leaves its worker spinning after a threaded call (results/bench/cpu/vit-24.md).
 * The call is the ridge solver's backward dW = Φ_bᵀ·dZ at the step's shape (d = 64, C = 10, n = 2048),
 * which cpu_gemm sends to cblas_sgemm (transposed A: not the libxsmm path). Printed: the process's CPU
 * time while the main thread sleeps 50 ms right after the call (mode 0), after openblas_set_num_threads(1)
 * (mode 1). Build: gcc -O2 vit-24-openblas-spin.c -I/usr/include/x86_64-linux-gnu/openblas-pthread -lopenblas */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
static double cpu(void){struct timespec t;clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t);return t.tv_sec+1e-9*t.tv_nsec;}
int main(int argc,char**argv){
  int mode=atoi(argv[1]);
  int n=2048,d=64,C=10; float *A=calloc(n*d,4),*B=calloc(n*C,4),*W=calloc(d*C,4);
  for(int it=0;it<3;it++){
    cblas_sgemm(CblasRowMajor,CblasTrans,CblasNoTrans,d,C,n,1,A,d,B,C,0,W,C);
    if(mode==1) openblas_set_num_threads(1);
    double c0=cpu(); usleep(50000); double c1=cpu();
    printf("mode %d: process CPU during 50 ms sleep: %.1f ms\n",mode,(c1-c0)*1e3);
    if(mode==1) openblas_set_num_threads(2);
  }
}

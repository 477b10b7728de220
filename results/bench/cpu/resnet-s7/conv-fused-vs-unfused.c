/* resnet20's three stride-1 convolution shapes, conv2d and conv2d_backward, the fused Winograd
 * kernel ($CLPDD_WINO_FUSED=1) against the unfused one (=0), best of 7 calls. Built and run from
 * the repository root after the build:
 *   gcc -O2 results/bench/cpu/resnet-s7/conv-fused-vs-unfused.c -Icore/include -Lbuild/core -lclpdd \
 *       -Wl,-rpath,$PWD/build/core -o /tmp/cb && CLPDD_CPU_THREADS=1 OPENBLAS_NUM_THREADS=1 /tmp/cb 10 */
#include "clpdd/ops.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  const clpdd_ops*O=clpdd_ops_cpu();
  int n=argc>1?atoi(argv[1]):100;
  int shapes[3][3]={{16,32,32},{32,16,16},{64,8,8}};
  for(int s=0;s<3;s++){int c=shapes[s][0],H=shapes[s][1];
    clpdd_conv2d_desc d={n,c,H,H,c,3,1,1,H,H,0,0,0,0,0,0};
    size_t N=(size_t)n*c*H*H,Nw=(size_t)c*c*9,wf=4*CLPDD_CONV2D_WORK(&d,n)+2*Nw;
    float*x=malloc(N*4),*y=malloc(N*4),*m=malloc(N*4),*w=malloc(Nw*4),*work=malloc(wf*4);
    for(size_t i=0;i<N;i++){x[i]=(rand()%1000)/500.0f-1;m[i]=(rand()%1000)/500.0f-1;}
    for(size_t i=0;i<Nw;i++)w[i]=(rand()%1000)/5000.0f-0.1f;
    for(int f=0;f<2;f++){setenv("CLPDD_WINO_FUSED",f?"1":"0",1);
      for(int b=0;b<2;b++){double best=1e9;
        for(int r=0;r<7;r++){double t0=now(); if(b) O->conv2d_backward(y,work,wf,x,m,w,&d); else O->conv2d(y,work,wf,x,w,NULL,NULL,&d); double t=now()-t0; if(t<best)best=t;}
        printf("c=%d H=%d %s fused=%d: %.3f ms  (%.1f us/img)\n",c,H,b?"bwd":"fwd",f,best*1e3,best*1e6/n);}}
    free(x);free(y);free(m);free(w);free(work);}
}

// OpenBLAS's CBLAS (with openblas_set_num_threads) and LAPACKE
// (Debian: libopenblas-dev, liblapacke-dev).
#include <cblas.h>
#include <lapacke.h>

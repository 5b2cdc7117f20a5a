/* Which OpenBLAS kernels run the products.  OpenBLAS built with DYNAMIC_ARCH (Debian's) picks
 * them once, when the library loads, from the CPU, unless OPENBLAS_CORETYPE names a set: some
 * machines set it on purpose (older OpenBLAS builds compute wrong results or crash on some
 * processors with the kernels they would pick).  The set decides much of a training step's
 * time, so `avemo version` and avemo-bench report it (docs/performance.md). */
#include <avemo/nn.h>

#include <cblas.h>

const char *avemo_nn_blas_core(void)
{
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
}

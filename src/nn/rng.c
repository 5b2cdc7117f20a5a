/* PCG32 (O'Neill's permuted congruential generator, XSH RR variant), written from its
 * description: a 64-bit LCG state and a 32-bit output permutation.  Small, fast and
 * reproducible, one per context so threads never share a generator. */
#include <avemo/nn.h>

#include <math.h>

#define PCG_MULT 6364136223846793005ULL

uint32_t avemo_rng_u32(struct avemo_rng *rng)
{
    uint64_t old = rng->state;
    rng->state = old * PCG_MULT + rng->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
    uint32_t rot = (uint32_t)(old >> 59);
    return (xorshifted >> rot) | (xorshifted << ((32 - rot) & 31));
}

void avemo_rng_seed(struct avemo_rng *rng, uint64_t seed, uint64_t stream)
{
    rng->state = 0;
    rng->inc = (stream << 1) | 1u;
    avemo_rng_u32(rng);
    rng->state += seed;
    avemo_rng_u32(rng);
}

float avemo_rng_uniform(struct avemo_rng *rng)
{
    return (float)(avemo_rng_u32(rng) >> 8) * (1.0f / 16777216.0f); /* 24 bits: exact in float */
}

/* Box-Muller; one of the pair is dropped to keep the generator state the only state. */
float avemo_rng_normal(struct avemo_rng *rng)
{
    double u1 = ((double)avemo_rng_u32(rng) + 1.0) / 4294967296.0; /* (0, 1] */
    double u2 = (double)avemo_rng_u32(rng) / 4294967296.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint32_t avemo_rng_below(struct avemo_rng *rng, uint32_t n)
{
    if (n == 0) return 0;
    uint32_t threshold = (uint32_t)(-n) % n; /* reject the low values that would bias the modulo */
    for (;;) {
        uint32_t r = avemo_rng_u32(rng);
        if (r >= threshold) return r % n;
    }
}

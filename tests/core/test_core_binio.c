/* The binary writer and reader shared by the file formats (src/core/binio.c): little-endian
 * fields, CRC-32 sections equal to zlib's crc32, a file replaced only when complete. */
#include "common/testutil.h"

#include <avemo/core.h>
#include <sys/stat.h>

static char dir[64];

static int setup(void **state)
{
    (void)state;
    return test_make_tmpdir(dir, sizeof dir, "binio");
}

static int teardown(void **state)
{
    (void)state;
    return test_remove_tmpdir(dir);
}

static void test_crc32_is_zlibs(void **state)
{
    (void)state;
    /* zlib's crc32 of "123456789" is the CRC-32 check value 0xcbf43926; chained calls agree */
    assert_int_equal(avemo_crc32(0, "123456789", 9), 0xcbf43926u);
    assert_int_equal(avemo_crc32(avemo_crc32(0, "1234", 4), "56789", 5), 0xcbf43926u);
    assert_int_equal(avemo_crc32(0, "", 0), 0);
}

static void test_round_trip(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/x.bin", dir);
    avemo_binw *w;
    struct avemo_error err = {0};
    assert_int_equal(avemo_binw_create(path, &w, &err), AVEMO_OK);
    const float f[3] = {1.5f, -2.0f, 3.25f};
    const double g[2] = {0.1, -1e300};
    avemo_binw_bytes(w, "AVEMOTST", 8);
    avemo_binw_u32(w, 0x01020304u);
    avemo_binw_u64(w, 0x0102030405060708ull);
    avemo_binw_crc(w);
    avemo_binw_str(w, "abc", 3);
    avemo_binw_f32(w, f, 3);
    avemo_binw_f64(w, g, 2);
    assert_int_equal(avemo_binw_offset(w), 8 + 4 + 8 + 4 + 7 + 12 + 16);
    assert_int_equal(avemo_binw_finish(w, &err), AVEMO_OK);
    uint8_t *data;
    size_t size;
    assert_int_equal(avemo_read_file(path, 1 << 20, &data, &size, &err), AVEMO_OK);
    assert_int_equal(size, 8 + 4 + 8 + 4 + 7 + 12 + 16 + 4);
    /* little-endian on disk, and the first section's CRC covers the 20 bytes before it */
    assert_memory_equal(data + 8, "\x04\x03\x02\x01\x08\x07\x06\x05\x04\x03\x02\x01", 12);
    uint32_t crc = data[20] | (uint32_t)data[21] << 8 | (uint32_t)data[22] << 16 | (uint32_t)data[23] << 24;
    assert_int_equal(crc, avemo_crc32(0, data, 20));
    for (int pass = 0; pass < 2; pass++) { /* from memory, then streaming from the file */
        struct avemo_binr r;
        if (pass == 0) avemo_binr_memory(&r, data, size);
        else assert_int_equal(avemo_binr_open(&r, path, &err), AVEMO_OK);
        char magic[8], s[3];
        float f2[3];
        double g2[2];
        assert_true(avemo_binr_bytes(&r, magic, 8));
        assert_int_equal(avemo_binr_u32(&r), 0x01020304u);
        assert_true(avemo_binr_u64(&r) == 0x0102030405060708ull);
        assert_true(avemo_binr_crc(&r));
        assert_int_equal(avemo_binr_u32(&r), 3);
        assert_true(avemo_binr_bytes(&r, s, 3));
        assert_true(avemo_binr_f32(&r, f2, 3) && avemo_binr_f64(&r, g2, 2));
        assert_true(avemo_binr_crc(&r));
        assert_memory_equal(f, f2, sizeof f);
        assert_memory_equal(g, g2, sizeof g);
        assert_int_equal(avemo_binr_u8(&r), 0); /* past the end: 0 and bad */
        assert_true(r.bad);
        avemo_binr_close(&r);
    }
    data[30] ^= 1; /* a damaged byte in the second section fails its CRC */
    struct avemo_binr r;
    avemo_binr_memory(&r, data, size);
    assert_true(avemo_binr_bytes(&r, NULL, 20) && avemo_binr_crc(&r));
    assert_true(avemo_binr_bytes(&r, NULL, 35));
    assert_false(avemo_binr_crc(&r));
    free(data);
}

static void test_failed_write_keeps_the_old_file(void **state)
{
    (void)state;
    char path[128], tmp[160];
    snprintf(path, sizeof path, "%s/keep.bin", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("old", f);
    fclose(f);
    avemo_binw *w;
    struct avemo_error err = {0};
    assert_int_equal(avemo_binw_create(path, &w, &err), AVEMO_OK);
    avemo_binw_u32(w, 7);
    avemo_binw_abort(w);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 3);
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    assert_int_not_equal(stat(tmp, &sb), 0);
    snprintf(path, sizeof path, "%s/no/such/dir/x.bin", dir);
    assert_int_equal(avemo_binw_create(path, &w, &err), AVEMO_ERR_IO);
    assert_non_null(strstr(err.message, "no/such/dir/x.bin"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32_is_zlibs),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_failed_write_keeps_the_old_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

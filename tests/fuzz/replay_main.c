/* A main() for the fuzz harnesses in ordinary builds: feed each file named on the
 * command line (or every file of a named directory) to LLVMFuzzerTestOneInput once.
 * ctest runs it over the seed corpus and the saved crash inputs (regressions/), so a
 * fixed crash stays fixed under every build, including ASan + UBSan. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return -1;
    }
    uint8_t *data = NULL;
    size_t size = 0, cap = 0, n;
    uint8_t chunk[65536];
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (size + n > cap) {
            cap = (size + n) * 2;
            uint8_t *bigger = realloc(data, cap);
            if (!bigger) {
                free(data);
                fclose(f);
                return -1;
            }
            data = bigger;
        }
        memcpy(data + size, chunk, n);
        size += n;
    }
    fclose(f);
    /* An exact-size copy, so ASan sees a read past the input's end. */
    uint8_t *exact = malloc(size ? size : 1);
    if (!exact) {
        free(data);
        return -1;
    }
    if (size) memcpy(exact, data, size);
    free(data);
    printf("replay %s (%zu bytes)\n", path, size);
    fflush(stdout);
    LLVMFuzzerTestOneInput(exact, size);
    free(exact);
    return 0;
}

/* Returns the number of files replayed, or -1. */
static int replay_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return 0; /* an absent regressions/ folder holds no inputs */
    if (!S_ISDIR(st.st_mode)) return replay_file(path) ? -1 : 1;
    struct dirent **names = NULL;
    int n = scandir(path, &names, NULL, alphasort), count = 0;
    for (int i = 0; i < n; i++) {
        char file[4096];
        snprintf(file, sizeof file, "%s/%s", path, names[i]->d_name);
        struct stat fst;
        if (names[i]->d_name[0] != '.' && stat(file, &fst) == 0 && S_ISREG(fst.st_mode)) {
            if (replay_file(file)) count = -1;
            else if (count >= 0) count++;
        }
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv)
{
    int total = 0;
    for (int i = 1; i < argc; i++) {
        int n = replay_path(argv[i]);
        if (n < 0) return 1;
        total += n;
    }
    printf("%d inputs replayed without a crash\n", total);
    return total > 0 ? 0 : 1; /* an empty corpus is a broken test, not a pass */
}

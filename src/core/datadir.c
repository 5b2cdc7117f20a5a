/* Where avemo's data is (models/, pipelines/): found at run time relative to the install
 * prefix of the code that runs, so that an installed tree can be moved (cmake --install
 * --prefix DIR) and a build tree works without installing.
 *
 * The prefix is found from the file the code was loaded from: libavemo.so for a program
 * linked with the shared library, otherwise the program itself (/proc/self/exe).  From that
 * file's folder up to AVEMO_DATA_UP levels, the first folder F with F/<datadir>/avemo is the
 * prefix: <prefix>/bin/avemo and <prefix>/lib/<multiarch>/libavemo.so both find
 * <prefix>/share/avemo; a build tree has build/share/avemo (links to the source tree's
 * models/ and pipelines/, made by cmake), found from build/avemo and build/tests/x/test_y. */
#define _GNU_SOURCE
#include <avemo/core.h>

#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef AVEMO_INSTALL_DATADIR
#define AVEMO_INSTALL_DATADIR "share" /* CMAKE_INSTALL_DATADIR, relative to the prefix */
#endif
#define AVEMO_DATA_UP 3

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* From the folder of `file` upwards: the first <folder>/<datadir>/avemo into out. */
static int search_up(const char *file, char *out, size_t size)
{
    char real[PATH_MAX];
    if (!file || AVEMO_INSTALL_DATADIR[0] == '/' || !realpath(file, real)) return 0; /* an absolute datadir: below */
    char *dir = dirname(real);
    for (int up = 0; up <= AVEMO_DATA_UP; up++) {
        char candidate[PATH_MAX + 64];
        snprintf(candidate, sizeof candidate, "%s/%s/avemo", strcmp(dir, "/") == 0 ? "" : dir, AVEMO_INSTALL_DATADIR);
        if (is_dir(candidate) && strlen(candidate) < size) {
            snprintf(out, size, "%s", candidate);
            return 1;
        }
        if (strcmp(dir, "/") == 0) break;
        dir = dirname(dir);
    }
    return 0;
}

/* The shared library this function is in, or NULL when it is linked into the program. */
static const char *shared_library_file(void)
{
    Dl_info info;
    struct link_map *map = NULL;
    if (!dladdr1((void *)&avemo_data_dir, &info, (void **)&map, RTLD_DL_LINKMAP) || !map) return NULL;
    return map->l_name && map->l_name[0] ? map->l_name : NULL; /* "" names the program */
}

enum avemo_status avemo_data_dir(char *path, size_t size, struct avemo_error *err)
{
    const char *env = getenv("AVEMO_DATA_DIR");
    if (env && env[0]) {
        if (!is_dir(env)) return avemo_fail(err, AVEMO_ERR_NOT_FOUND, "AVEMO_DATA_DIR=%s: not a folder", env);
        snprintf(path, size, "%s", env);
        return AVEMO_OK;
    }
    if (search_up(shared_library_file(), path, size) || search_up("/proc/self/exe", path, size)) return AVEMO_OK;
#ifdef AVEMO_INSTALL_FULL_DATADIR
    /* A program linked with the static library, outside the prefix: the configured one. */
    if (is_dir(AVEMO_INSTALL_FULL_DATADIR "/avemo")) {
        snprintf(path, size, "%s", AVEMO_INSTALL_FULL_DATADIR "/avemo");
        return AVEMO_OK;
    }
#endif
    return avemo_fail(err, AVEMO_ERR_NOT_FOUND,
                      "avemo's data folder (%s/avemo with models/) was not found near the library or the program; "
                      "set AVEMO_DATA_DIR", AVEMO_INSTALL_DATADIR);
}

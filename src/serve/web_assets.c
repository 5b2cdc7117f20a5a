/* The web page of GET /: the files of src/serve/web/ embedded into the library at build time by
 * src/serve/web/web.cmake, which generates serve_web_assets.h (byte arrays) and puts it on
 * the include path.  A build without that step still works; it answers 404 for the page. */
#include "serve/serve_internal.h"

#include <string.h>

#if defined(__has_include)
#if __has_include("serve_web_assets.h")
#include "serve_web_assets.h"
#define SERVE_HAVE_WEB_ASSETS 1
#endif
#endif

#ifndef SERVE_HAVE_WEB_ASSETS
static const struct serve_asset serve_web_assets[] = {{NULL, NULL, NULL, 0}};
#endif

int serve_assets_embedded(void) { return serve_web_assets[0].path != NULL; }

const struct serve_asset *serve_find_asset(const char *url)
{
    for (const struct serve_asset *a = serve_web_assets; a->path; a++)
        if (strcmp(a->path, url) == 0) return a;
    return NULL;
}

const struct serve_asset *serve_openapi_asset(void) { return serve_find_asset("/openapi.json"); }

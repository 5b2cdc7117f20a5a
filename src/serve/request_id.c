/* Request ids and idempotency keys: what lets any replica answer any request.
 *
 * X-Request-Id: a client's (or a proxy's) id is kept when it is 1..64 characters of
 * [A-Za-z0-9._:-]; otherwise a new one of 32 random hex digits is made.  It is echoed on
 * every answer, written in the access log and stored with the history row.
 *
 * Idempotency-Key: 1..128 visible ASCII characters.  The first answer for a key is stored
 * in the (shared) history; a retry with the key gets that answer back and adds no row. */
#include "serve/serve_internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

static int sane_request_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > SERVE_REQUEST_ID_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("._:-", c)))
            return 0;
    }
    return 1;
}

void serve_request_id_init(struct serve_request *req)
{
    const char *given = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Request-Id");
    if (given && sane_request_id(given)) {
        snprintf(req->request_id, sizeof req->request_id, "%s", given);
        return;
    }
    uint8_t bytes[16] = {0};
    size_t got = 0;
    while (got < sizeof bytes) { /* getrandom of <= 256 bytes is not interrupted once seeded */
        ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof bytes; i++) snprintf(req->request_id + 2 * i, 3, "%02x", bytes[i]);
}

int serve_idempotency_key_init(struct serve_request *req)
{
    req->idempotency_key[0] = '\0';
    const char *key = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Idempotency-Key");
    if (!key) return 0;
    size_t n = strlen(key);
    if (n == 0 || n > SERVE_IDEMPOTENCY_KEY_MAX) return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)key[i] <= 0x20 || (unsigned char)key[i] >= 0x7f) return -1;
    memcpy(req->idempotency_key, key, n + 1);
    return 0;
}

void serve_add_request_headers(const struct serve_request *req, struct MHD_Response *resp)
{
    if (req->request_id[0]) MHD_add_response_header(resp, "X-Request-Id", req->request_id);
    if (req->replayed) MHD_add_response_header(resp, "Idempotent-Replayed", "true");
}

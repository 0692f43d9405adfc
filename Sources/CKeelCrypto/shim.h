// OpenSSL's libcrypto, for the HMAC-SHA256 that authenticates member connections (issue 8 §2).
// Only the one-shot HMAC, the SHA-256 digest and the constant-time compare are used.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#ifndef TUTELA_COPENSSL_SHIM_H
#define TUTELA_COPENSSL_SHIM_H
/* SHA256_Init/Update/Final, deprecated in OpenSSL 3 in favour of EVP, are kept for the keyed
   HMAC states of KeyedHMAC: a SHA256_CTX is a plain struct that can be copied. */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
/* getrandom(2), for key material without the cost of the shared DRBG. */
#include <sys/random.h>
#endif

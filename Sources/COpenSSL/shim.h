#ifndef TUTELA_COPENSSL_SHIM_H
#define TUTELA_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
/* getrandom(2), for key material without the cost of the shared DRBG. */
#include <sys/random.h>
#endif

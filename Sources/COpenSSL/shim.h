#ifndef TUTELA_COPENSSL_SHIM_H
#define TUTELA_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#endif

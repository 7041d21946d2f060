#ifndef FRESHET_CLIBPQ_SHIM_H
#define FRESHET_CLIBPQ_SHIM_H
#include <postgresql/libpq-fe.h>
#endif

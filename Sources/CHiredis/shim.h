#ifndef FRESHET_CHIREDIS_SHIM_H
#define FRESHET_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#endif

// Intentionally empty: the module only exposes <sys/epoll.h> (see include/CEpoll.h).
#include "CEpoll.h"

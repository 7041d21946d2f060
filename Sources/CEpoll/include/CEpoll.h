// epoll(7) for freshet-bench's SSE clients: Swift's Glibc module does not export <sys/epoll.h>.
#include <sys/epoll.h>

/*
 * sock_tcp_ipv6: sock_tcp_loop over IPv6 loopback (::1): an established connection with
 * both ends in the process, queues full both ways, options, and the listener.
 */
#define TCP_FAMILY AF_INET6
#include "sock_tcp_loop.c"

/** What xrun puts in a root's /etc: shared by the sandbox (a private copy) and rootfs debian (a file in the tree). */

/** The lines that name localhost, as Debian writes them. */
export const LOCALHOST_LINES = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n';

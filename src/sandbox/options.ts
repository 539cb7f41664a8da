/** The options of the modes that run a program in a root of its own: --rootfs, --image, --transparent. */

import type { OptionSpec } from '../options.js';

export interface SandboxOptions {
  rootfs?: string;
  image?: string;
  transparent?: boolean;
  bind: string[];
  devBind: string[];
  cwd?: string;
  /** false with --no-sandbox (commander's negated-option form). */
  sandbox?: boolean;
  /** false with --no-hosts. */
  hosts?: boolean;
  /** false with --no-resolv-conf. */
  resolvConf?: boolean;
  /** --ca-certs FILE; false with --no-ca-certs. */
  caCerts?: string | false;
  /** --verbose: --explain shows every binfmt entry in full. */
  verbose?: boolean;
  gdbChild?: string;
  /** false with --no-native-tools. */
  nativeTools?: boolean;
}

export const SANDBOX_OPTIONS: readonly OptionSpec<keyof SandboxOptions>[] = [
  { long: '--image', value: 'ref', key: 'image', modes: ['image'], description: 'run inside a registry image (pulled and unpacked once, each run on a private overlay; --arch picks the platform)' },
  { long: '--rootfs', value: 'dir', key: 'rootfs', modes: ['rootfs'], description: 'run inside this foreign root file system (user + mount namespaces, its own /dev)' },
  { long: '--transparent', key: 'transparent', modes: ['transparent'], description: 'run a host command where every foreign program it starts is emulated' },
  { long: '--bind', value: 'src[:dst]', many: true, key: 'bind', modes: ['rootfs', 'image'], description: 'with --rootfs: bind-mount a host path inside (repeatable)' },
  { long: '--dev-bind', value: 'src[:dst]', many: true, key: 'devBind', modes: ['rootfs', 'image'], description: "with --rootfs: a host device (or directory of them) in the guest's private /dev (repeatable)" },
  { long: '--cwd', value: 'dir', key: 'cwd', modes: ['rootfs', 'image', 'transparent'], description: 'with --rootfs: working directory inside' },
  { long: '--no-hosts', key: 'hosts', modes: ['rootfs', 'image'], description: "with --rootfs: leave the tree's /etc/hosts (default: the host's, naming localhost, a private copy)" },
  { long: '--no-resolv-conf', key: 'resolvConf', modes: ['rootfs', 'image'], description: "with --rootfs: leave the tree's /etc/resolv.conf (default: the host's, a private copy)" },
  { long: '--ca-certs', value: 'file', key: 'caCerts', modes: ['rootfs', 'image'], description: "with --rootfs: trust the CA certificates in FILE (PEM) inside, beside the tree's own: a private copy bound over the tree's CA bundle, named by SSL_CERT_FILE and NODE_EXTRA_CA_CERTS too" },
  { long: '--no-ca-certs', key: 'caCerts', modes: ['rootfs', 'image'], description: "with --rootfs: leave the tree's CA bundle and set no variable (default: SSL_CERT_FILE and NODE_EXTRA_CA_CERTS name the host's, where the tree has one and the host trusts a certificate it lacks)" },
  { long: '--verbose', key: 'verbose', modes: ['rootfs', 'image', 'transparent'], description: 'with --explain: every binfmt entry in full (its CPU and why, the launcher, the register line)' },
  { long: '--gdb-child', value: 'name', key: 'gdbChild', modes: ['rootfs', 'image', 'transparent'], description: 'with --gdb or --gdb-port: debug the first foreign program started inside whose file is named NAME (as ps shows it)' },
  { long: '--no-native-tools', key: 'nativeTools', modes: ['rootfs', 'image'], description: "run the tree's compiler programs emulated, never as native stand-ins (also XRUN_NATIVE_TOOLS=0)" },
  { long: '--no-sandbox', key: 'sandbox', modes: ['rootfs'], description: 'with --rootfs: no confinement: run the program under the emulator with -L DIR; the programs it starts run on the HOST' },
];

import net from 'node:net';

/**
 * Adds, for every host candidate of the answer, the same candidate on each configured public
 * address of its family (pure). A server behind a 1:1 NAT binds private addresses but is reached
 * on public ones with the same ports.
 */
export function announcePublicAddresses(sdp: string, publicIps: readonly string[]): string {
  if (publicIps.length === 0) return sdp;
  const out: string[] = [];
  const lines = sdp.split('\r\n');
  let n = 0;
  for (const line of lines) {
    out.push(line);
    const m = /^a=candidate:(\S+) (\d+) (udp|UDP) (\d+) (\S+) (\d+) typ host(.*)$/.exec(line);
    if (!m) continue;
    const [, , component, transport, priority, address, port, rest] = m;
    const family = net.isIP(address ?? '');
    for (const ip of publicIps) {
      if (net.isIP(ip) !== family || ip === address) continue;
      // Slightly above the private candidate: peers on the internet try it first.
      out.push(`a=candidate:pub${n++} ${component} ${transport} ${Number(priority) + 1} ${ip} ${port} typ host${rest}`);
    }
  }
  return out.join('\r\n');
}

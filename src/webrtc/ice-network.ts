import type { RTCPeerConnection } from 'werift';

/**
 * The network side of this server's WebRTC peers (WHIP publishers and WHEP viewers share it):
 * ICE-lite, UDP host candidates in one port range, optional announced public addresses.
 */
export interface IceNetworkSettings {
  portMin: number;
  portMax: number;
  ipv4: boolean;
  ipv6: boolean;
  /** Extra local addresses to gather host candidates on (e.g. a loopback or tunnel address). */
  additionalHostAddresses: string[];
  /** Addresses announced for every host candidate's port (servers behind a 1:1 NAT). */
  publicIps: string[];
}

/**
 * The RTCPeerConnection options for one ICE-lite peer on these settings. `onStunRequest` is told
 * of every authenticated STUN binding request from the remote peer: each one is a consent check
 * (RFC 7675), the sign that the peer is still there.
 */
export function icePeerOptions(net: IceNetworkSettings, onStunRequest: () => void) {
  return {
    iceLite: true,
    bundlePolicy: 'max-bundle' as const,
    icePortRange: net.portMin > 0 && net.portMax > net.portMin ? ([net.portMin, net.portMax] as [number, number]) : undefined,
    iceAdditionalHostAddresses: net.additionalHostAddresses.length ? net.additionalHostAddresses : undefined,
    iceUseIpv4: net.ipv4,
    iceUseIpv6: net.ipv6,
    iceUseTcp: false,
    iceFilterStunResponse: () => {
      onStunRequest();
      return true;
    },
  };
}

/** Resolves when the peer has gathered its host candidates (at most `timeoutMs`). */
export async function iceGathered(pc: RTCPeerConnection, timeoutMs = 5000): Promise<void> {
  if (pc.iceGatheringState === 'complete') return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    pc.iceGatheringStateChange.subscribe((state) => {
      if (state !== 'complete') return;
      clearTimeout(timer);
      resolve();
    });
  });
}

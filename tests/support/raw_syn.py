"""Send one TCP SYN as raw Ethernet and report the answer: a probe no socket API can make.

Run inside a test's network namespace:
    python raw_syn.py IFACE NEXT_HOP_MAC SRC_IP DST_IP DPORT
It prints SYNACK, RST or NONE. It exists to send to 127.0.0.1 *through a veth*, the way a
neighbour on the same link reaches ports Docker 20.10 publishes on loopback (moby #45610);
a kernel socket would keep such a packet on the namespace's own loopback.
"""

from __future__ import annotations

import random
import socket
import struct
import sys
import time

ETH_P_IP = 0x0800
ETH_P_ALL = 0x0003
WAIT_S = 2.0


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def syn_frame(src_mac: bytes, dst_mac: bytes, src_ip: str, dst_ip: str, sport: int, dport: int) -> bytes:
    src, dst = socket.inet_aton(src_ip), socket.inet_aton(dst_ip)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, random.getrandbits(32), 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.getrandbits(16), 0x4000, 64, socket.IPPROTO_TCP, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return dst_mac + src_mac + struct.pack("!H", ETH_P_IP) + ip + tcp


def main() -> None:
    iface, mac_text, src_ip, dst_ip, dport_text = sys.argv[1:6]
    dport, sport = int(dport_text), random.randint(40000, 60000)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((iface, 0))
    src_mac = sock.getsockname()[4]
    sock.send(syn_frame(src_mac, bytes.fromhex(mac_text.replace(":", "")), src_ip, dst_ip, sport, dport))
    deadline = time.monotonic() + WAIT_S
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            frame = sock.recv(2048)
        except TimeoutError:
            break
        if len(frame) < 54 or struct.unpack("!H", frame[12:14])[0] != ETH_P_IP or frame[23] != socket.IPPROTO_TCP:
            continue
        header = (frame[14] & 0x0F) * 4
        got_sport, got_dport = struct.unpack("!HH", frame[14 + header : 18 + header])
        if (got_sport, got_dport) != (dport, sport):
            continue
        flags = frame[14 + header + 13]
        print("SYNACK" if flags & 0x12 == 0x12 else "RST" if flags & 0x04 else f"FLAGS {flags:#x}")
        return
    print("NONE")


if __name__ == "__main__":
    main()

/**
 * The last step of a graceful stop for HTTP/1 connections (cli.ts, keepSendingOnClose). A connection
 * is ended with a FIN after its last bytes and may then be destroyed as soon as the client has
 * acknowledged every byte and the FIN, which Linux shows as the state FIN_WAIT2 in /proc/net/tcp:
 * nothing of the response is left in the kernel to lose when the process (and a container's
 * network with it) goes. Without this the stop waited for the client to close its side, and
 * Chromium keeps idle pooled connections open: a stop with a tab open took the whole grace period.
 * Where the kernel does not say (not Linux), a connection closes when its client closes it, within
 * the grace period, as before.
 */
import { readFileSync } from 'node:fs'
import type { Socket } from 'node:net'

/** TCP_FIN_WAIT2 in the kernel's state numbering (include/net/tcp_states.h), as /proc/net/tcp prints it. */
const FIN_WAIT2 = '05'
const POLL_MS = 25

/**
 * The ports ("local:remote") of this process's TCP connections in FIN_WAIT2, or undefined when
 * /proc/net/tcp cannot be read. A connection is known by its two ports: its server's port is the
 * local one, and two clients' connections with the same remote port on one server port, both
 * stopping at once, would need two client hosts that picked the same ephemeral port.
 */
export function acknowledgedConnections (read: (file: string) => string = file => readFileSync(file, 'utf8')): Set<string> | undefined {
  const ports = new Set<string>()
  let known = false
  for (const file of ['/proc/self/net/tcp', '/proc/self/net/tcp6']) {
    let text: string
    try { text = read(file) } catch { continue }
    known = true
    for (const line of text.split('\n').slice(1)) {
      const [, local, remote, state] = line.trim().split(/\s+/)
      if (state === FIN_WAIT2 && local !== undefined && remote !== undefined) ports.add(`${portOf(local)}:${portOf(remote)}`)
    }
  }
  return known ? ports : undefined
}

/** "0100007F:1F90" → 8080: the port after the address, in hex. */
const portOf = (address: string) => parseInt(address.slice(address.lastIndexOf(':') + 1), 16)

/**
 * Destroys each socket given once its FIN is sent and acknowledged. Returns `add`; sockets that
 * close by themselves leave the set, and the polling stops when it is empty.
 */
export function destroyWhenAcknowledged (): (socket: Socket) => void {
  const waiting = new Set<Socket>()
  let timer: NodeJS.Timeout | undefined
  const poll = () => {
    const done = acknowledgedConnections()
    if (done === undefined) { clearInterval(timer); timer = undefined; return }
    for (const socket of waiting) {
      if (socket.writableFinished && done.has(`${socket.localPort ?? ''}:${socket.remotePort ?? ''}`)) socket.destroy()
    }
    if (waiting.size === 0) { clearInterval(timer); timer = undefined }
  }
  return socket => {
    if (socket.destroyed) return
    waiting.add(socket)
    socket.once('close', () => waiting.delete(socket))
    if (timer === undefined) {
      timer = setInterval(poll, POLL_MS)
      timer.unref()
    }
  }
}

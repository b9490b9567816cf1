/**
 * Free lists of equal-sized scratch buffers, so the loops that read files a slice at a time reuse
 * memory instead of leaving it to the garbage collector: dead buffers count in RSS until V8 next
 * collects, and a server streaming a root larger than its memory budget made tens of MB of them.
 */
export class BufferPool {
  private readonly free: Buffer[] = []

  /** `keep` bounds what stays allocated when idle: `keep × size` bytes at most. */
  constructor (readonly size: number, private keep: number) {}

  take (): Buffer { return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size) }

  /** Only for a buffer nothing refers to any more (a write callback has fired, a hash is updated). */
  give (buffer: Buffer): void {
    if (this.free.length < this.keep && buffer.length === this.size) this.free.push(buffer)
  }

  /** Keeps at most `keep` buffers from now on: more during a burst of parallel work, fewer after it. */
  keepAtMost (keep: number): void {
    this.keep = keep
    this.free.length = Math.min(this.free.length, keep)
  }
}

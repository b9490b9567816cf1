/**
 * Free lists of equal-sized scratch buffers, so the loops that read files a slice at a time reuse
 * memory instead of leaving it to the garbage collector. Dead read buffers are only returned when V8
 * next collects, and until then they count in RSS: serving a root larger than the memory budget
 * grew RSS by 20–35 MB of such garbage (`npm run bench -- --memory`), the margin issue 2 allows.
 */
export class BufferPool {
  private readonly free: Buffer[] = []

  /** `keep` bounds what stays allocated when idle: `keep × size` bytes at most. */
  constructor (readonly size: number, private readonly keep: number) {}

  take (): Buffer { return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size) }

  /** Only for a buffer nothing refers to any more (a write callback has fired, a hash is updated). */
  give (buffer: Buffer): void {
    if (this.free.length < this.keep && buffer.length === this.size) this.free.push(buffer)
  }
}

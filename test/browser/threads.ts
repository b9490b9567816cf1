/**
 * The smallest threaded WebAssembly module, assembled here byte by byte (WebAssembly Core spec §5,
 * binary format; the threads proposal's shared memory and atomics): it imports a shared memory and
 * exports `add(n)`, which atomically adds 1 to the i32 at address 0, n times. Instances in the page
 * and in a worker sharing one memory must end with the sum of their n: any lost update (a plain
 * load/add/store) or a memory that is not really shared shows as a smaller total.
 *
 *   (module
 *     (import "env" "memory" (memory 1 1 shared))
 *     (func (export "add") (param $n i32)
 *       (block (loop
 *         (br_if 1 (i32.eqz (local.get $n)))
 *         (drop (i32.atomic.rmw.add (i32.const 0) (i32.const 1)))
 *         (local.set $n (i32.sub (local.get $n) (i32.const 1)))
 *         (br 0)))))
 */

/** A name or a vector: its length (one LEB128 byte below 128), then its bytes. */
function vec (bytes: number[]): number[] {
  if (bytes.length > 127) throw new Error('longer than one LEB128 byte')
  return [bytes.length, ...bytes]
}

const name = (s: string) => vec([...Buffer.from(s, 'utf8')])
const section = (id: number, contents: number[]) => [id, ...vec(contents)]

const I32 = 0x7f
const body = [
  0x00, // no locals besides the parameter
  0x02, 0x40, // block
  0x03, 0x40, // loop
  0x20, 0x00, 0x45, 0x0d, 0x01, // local.get 0; i32.eqz; br_if 1
  0x41, 0x00, 0x41, 0x01, // i32.const 0 (the address); i32.const 1
  0xfe, 0x1e, 0x02, 0x00, // i32.atomic.rmw.add, align 2^2, offset 0
  0x1a, // drop the old value
  0x20, 0x00, 0x41, 0x01, 0x6b, 0x21, 0x00, // local.set 0 (local.get 0 - 1)
  0x0c, 0x00, // br 0
  0x0b, 0x0b, 0x0b, // end loop, end block, end function
]

export const ATOMIC_ADD_WASM = Buffer.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // \0asm, version 1
  ...section(1, [1, 0x60, ...vec([I32]), ...vec([])]), // type 0: (i32) -> ()
  ...section(2, [1, ...name('env'), ...name('memory'), 0x02, 0x03, 1, 1]), // import memory, flags 3: shared with a maximum; 1 page
  ...section(3, [1, 0]), // function 0 has type 0
  ...section(7, [1, ...name('add'), 0x00, 0]), // export function 0 as "add"
  ...section(10, [1, ...vec(body)]),
])

/**
 * An S3 upload manifest: one object per file wasm-serve serves, with the metadata S3 stores and
 * sends back (Content-Type, Content-Encoding, Cache-Control:
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html), the bucket's CORS
 * configuration in the shape `aws s3api put-bucket-cors --cors-configuration` takes
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/ManageCorsUsing.html), and per object the
 * headers S3 cannot send at all, for a CDN's response-headers policy in front of the bucket.
 *
 * S3 answers a key with the object stored under it and nothing else: it does not read
 * Accept-Encoding. So an original is uploaded as identity, and each precompressed sibling as an
 * object of its own, labelled with its Content-Encoding and the original's type, which is what
 * wasm-serve sends to a browser that requests it by name (D3; Unity's `Build/game.wasm.br`).
 *
 * Upload: `jq -r '.objects[] | [.file, .key, .contentType, .cacheControl, (.contentEncoding // "")] | @tsv' s3.json |
 *   while IFS=$'\t' read -r f k t c e; do aws s3 cp "DIR/$f" "s3://BUCKET/$k" --content-type "$t" --cache-control "$c" ${e:+--content-encoding "$e"}; done`
 */
import { commonWarnings } from '../notes.js'
import type { Site, SiteFile } from '../site.js'
import type { Exported, Target } from '../target.js'
import { headerName, named } from './cdn.js'

/** Headers S3 keeps as object metadata; the CORS ones come from the bucket's CORS rules. */
const METADATA = new Set(['content-type', 'cache-control'])
const CORS = new Set(['access-control-allow-origin', 'access-control-expose-headers', 'vary'])

export interface S3Object {
  /** The object key: the file's path relative to the root, not percent-encoded. */
  key: string
  /** The file to upload, relative to the exported directory. */
  file: string
  contentType: string
  cacheControl: string
  contentEncoding?: string
  /** Headers wasm-serve sends that S3 cannot: for a CDN's response-headers policy (names as sent). */
  cdnHeaders?: Record<string, string>
}

export interface S3Manifest {
  format: 'wasm-serve-s3-manifest/1'
  objects: S3Object[]
  /** `aws s3api put-bucket-cors --cors-configuration file://…` takes this object as it is. */
  cors?: { CORSRules: Array<Record<string, unknown>> }
  /** What S3 cannot do that wasm-serve does, also printed on stderr (JSON has no comments). */
  warnings: string[]
}

export const s3: Target = site => {
  const warnings = commonWarnings(site, { engine: 'S3', siblings: 'served', codings: ['br', 'zstd', 'gzip'], decodedLength: false, earlyHints: false, corsOriginList: true, encodedLength: true })
  const objects = site.files.map(objectOf)
  if (site.files.some(f => f.encodings.length > 0)) {
    warnings.push(`S3 does not negotiate Accept-Encoding: ${named(site.files.filter(f => f.encodings.length > 0).map(f => f.path))} are sent uncompressed at their own URL; their siblings are objects of their own with Content-Encoding, for loaders that request them by name, and a browser that does not accept that coding gets bytes it cannot read (D2, D3)`)
  }
  const needCdn = [...new Set(objects.flatMap(o => Object.keys(o.cdnHeaders ?? {})))].sort()
  if (needCdn.length > 0) warnings.push(`S3 cannot send ${needCdn.join(', ')}: each object's "cdnHeaders" are for a response-headers policy of the CDN in front (CloudFront) (D11, D12, D13)`)
  if (site.opts.spa !== false) warnings.push(`S3 has no SPA fallback for extension-less paths; a CDN must rewrite them to ${site.opts.spa} (D15)`)
  const manifest: S3Manifest = { format: 'wasm-serve-s3-manifest/1', objects, ...corsRules(site), warnings }
  return { files: [{ name: 's3.json', text: JSON.stringify(manifest, null, 2) + '\n' }], warnings } satisfies Exported
}

function objectOf (file: SiteFile): S3Object {
  const cdnHeaders: Record<string, string> = {}
  for (const [name, value] of Object.entries(file.headers)) if (!METADATA.has(name) && !CORS.has(name)) cdnHeaders[headerName(name)] = value
  return {
    key: file.path,
    file: file.path,
    contentType: file.type,
    cacheControl: file.headers['cache-control'] ?? 'no-cache',
    ...(file.direct !== undefined ? { contentEncoding: file.direct } : {}),
    ...(Object.keys(cdnHeaders).length > 0 ? { cdnHeaders } : {}),
  }
}

/** The bucket's CORS rules (D13): S3 echoes an allowed Origin itself and varies on it. */
function corsRules (site: Site): Pick<S3Manifest, 'cors'> {
  const cors = site.opts.cors
  if (cors === false) return {}
  const exposed = site.files.find(f => f.headers['access-control-expose-headers'] !== undefined)?.headers['access-control-expose-headers']
  return {
    cors: {
      CORSRules: [{
        AllowedOrigins: cors.origin === '*' ? ['*'] : [...cors.origin].sort(),
        AllowedMethods: ['GET', 'HEAD'],
        AllowedHeaders: ['*'],
        ...(exposed !== undefined ? { ExposeHeaders: exposed.split(',').map(h => h.trim()) } : {}),
        MaxAgeSeconds: 86400,
      }],
    },
  }
}

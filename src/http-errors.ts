/**
 * HTTP error responses in one place (start-up errors are in start-errors.ts): a status, a fixed
 * plain-text body, never a filesystem path or anything echoed from the request.
 */
import type { FastifyReply } from 'fastify'

const TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  414: 'URI Too Long',
  416: 'Range Not Satisfiable',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
}

export function sendError (reply: FastifyReply, status: number, headers: Record<string, string> = {}): FastifyReply {
  const body = `${TEXT[status] ?? 'Error'}\n`
  return reply.code(status).headers({ ...headers, 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).send(body)
}

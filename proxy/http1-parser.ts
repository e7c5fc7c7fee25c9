/**
 * Node's own HTTP/1.x parser (llhttp, the C parser behind its http module),
 * reached through `_http_common` as Node's server and client reach it, with
 * types. Strict: no lenient flags, so that the proxy and the server it
 * forwards to cannot read one message two ways.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const common = require('_http_common') as { HTTPParser: NativeParserClass; methods: string[] };

interface NativeParserClass {
  new (): NativeParser;
  REQUEST: number;
  RESPONSE: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kLenientNone: number;
}

interface NativeParser {
  [callback: number]: unknown;
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | ParseError;
  finish(): number | ParseError | undefined;
  close(): void;
}

/** llhttp's error: its code (HPE_...), its reason, and how far into the chunk it got. */
export interface ParseError extends Error {
  code: string;
  reason: string;
  bytesParsed: number;
}

/** One message's start line and headers (raw names and values, in order, as received). */
export interface MessageHead {
  versionMajor: number;
  versionMinor: number;
  headers: string[];
  method: string;
  url: string;
  statusCode: number;
  statusMessage: string;
  upgrade: boolean;
  shouldKeepAlive: boolean;
}

export interface ParserEvents {
  /** Returning true tells the parser the message has no body (the answer to a HEAD). */
  head(h: MessageHead): boolean;
  body(chunk: Buffer): void;
  complete(): void;
}

const { HTTPParser, methods } = common;

export class Http1Parser {
  private readonly native = new HTTPParser();
  /** Headers the parser hands over early (many or split across reads), before the rest. */
  private early: string[] = [];
  private earlyUrl = '';

  constructor(kind: 'request' | 'response', events: ParserEvents) {
    const p = this.native;
    p.initialize(kind === 'request' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, {}, 0, HTTPParser.kLenientNone);
    p[HTTPParser.kOnHeaders] = (headers: string[], url: string) => {
      this.early.push(...headers);
      this.earlyUrl += url;
    };
    p[HTTPParser.kOnHeadersComplete] = (
      versionMajor: number,
      versionMinor: number,
      headers: string[] | undefined,
      method: number | undefined,
      url: string | undefined,
      statusCode: number | undefined,
      statusMessage: string | undefined,
      upgrade: boolean,
      shouldKeepAlive: boolean,
    ) => {
      const all = this.early.length ? [...this.early, ...(headers ?? [])] : (headers ?? []);
      const fullUrl = url ?? this.earlyUrl;
      this.early = [];
      this.earlyUrl = '';
      const skipBody = events.head({
        versionMajor,
        versionMinor,
        headers: all,
        method: method === undefined ? '' : (methods[method] ?? ''),
        url: fullUrl,
        statusCode: statusCode ?? 0,
        statusMessage: statusMessage ?? '',
        upgrade,
        shouldKeepAlive,
      });
      return skipBody ? 1 : 0;
    };
    p[HTTPParser.kOnBody] = (chunk: Buffer) => {
      events.body(chunk);
    };
    p[HTTPParser.kOnMessageComplete] = () => {
      events.complete();
    };
  }

  /** Parses a chunk: the bytes it took (fewer than given after an upgrade's head), or the error. */
  execute(data: Buffer): number | ParseError {
    return this.native.execute(data);
  }

  /** The peer closed: a body that runs to the close ends here. */
  finish(): ParseError | undefined {
    const r = this.native.finish();
    return r instanceof Error ? r : undefined;
  }

  close(): void {
    this.native.close();
  }
}

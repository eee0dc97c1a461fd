/** body-parser 1.x ships no types; the one factory the REST routes use (protocols/json-body.ts). */
declare module "body-parser" {
  import type { IncomingMessage, ServerResponse } from "node:http";
  type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;
  const bodyParser: { json(options: { strict?: boolean; limit?: number | string }): Middleware };
  export default bodyParser;
}

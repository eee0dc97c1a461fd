import { createHmac } from "node:crypto";
import jwt from "jsonwebtoken";
import { startNode, type TestNode } from "../helpers/node";
import { connect, refusal } from "../helpers/client";
import { rsaKeys, TEST_SECRET } from "../helpers/tokens";

/**
 * JWT attacks against a running gateway configured with an RSA public key, an issuer and an
 * audience (JWT_PUBLIC_KEY, JWT_ISSUER, JWT_AUDIENCE): each forged token is refused over REST
 * (401 AUTH_FAILED) and at the Socket.IO handshake (connect_error AUTH_FAILED).
 */
const rsa = rsaKeys();
const ISSUER = "https://id.example";
const AUDIENCE = "pf2-realtime";
const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);
const claims = (extra: object = {}) => ({ tenantId: "t1", userId: "u1", iss: ISSUER, aud: AUDIENCE, exp: now() + 600, ...extra });
const signed = (extra: object = {}) => jwt.sign(claims(extra), rsa.privateKey, { algorithm: "RS256" });

function hmac(alg: string, payload: object, key: string | Buffer): string {
  const body = `${b64({ alg, typ: "JWT" })}.${b64(payload)}`;
  const digest = { HS256: "sha256", HS384: "sha384", HS512: "sha512" }[alg] ?? "sha256";
  return `${body}.${createHmac(digest, key).update(body).digest("base64url")}`;
}

const attacks: Array<[string, () => string]> = [
  ["alg none", () => `${b64({ alg: "none", typ: "JWT" })}.${b64(claims({ role: "super_admin" }))}.`],
  ["alg none with a signature", () => `${b64({ alg: "none" })}.${b64(claims())}.${signed().split(".")[2]}`],
  ["HS256 signed with the RSA public key PEM (key confusion)", () => hmac("HS256", claims({ role: "super_admin" }), rsa.publicKey)],
  ["HS512 signed with the RSA public key PEM", () => hmac("HS512", claims(), rsa.publicKey)],
  ["HS256 signed with the test secret (no secret configured)", () => hmac("HS256", claims(), TEST_SECRET)],
  ["RS512 (not the configured algorithm)", () => jwt.sign(claims(), rsa.privateKey, { algorithm: "RS512" })],
  ["a token signed by another RSA key", () => jwt.sign(claims(), rsaKeys().privateKey, { algorithm: "RS256" })],
  ["a tampered payload (other tenant)", () => {
    const [header, , signature] = signed().split(".");
    return `${header}.${b64(claims({ tenantId: "t2" }))}.${signature}`;
  }],
  ["a tampered payload (role raised)", () => {
    const [header, , signature] = signed().split(".");
    return `${header}.${b64(claims({ role: "super_admin" }))}.${signature}`;
  }],
  ["expired beyond the clock skew", () => signed({ exp: now() - 120 })],
  ["nbf beyond the clock skew", () => signed({ nbf: now() + 120 })],
  ["a wrong issuer", () => signed({ iss: "https://evil.example" })],
  ["no issuer", () => jwt.sign({ ...claims(), iss: undefined }, rsa.privateKey, { algorithm: "RS256" })],
  ["a wrong audience", () => signed({ aud: "billing" })],
  ["no audience", () => jwt.sign({ ...claims(), aud: undefined }, rsa.privateKey, { algorithm: "RS256" })]
];

describe("JWT attacks against a gateway with JWT_PUBLIC_KEY, JWT_ISSUER, JWT_AUDIENCE", () => {
  let node: TestNode;

  beforeAll(async () => {
    node = await startNode({ config: { jwtSecret: undefined, jwtPublicKey: rsa.publicKey, jwtIssuer: [ISSUER], jwtAudience: [AUDIENCE], jwtClockSkewSeconds: 30 } });
  });
  afterAll(() => node.stop());

  const get = async (token: string) => {
    const res = await fetch(`${node.url}/api/presence/u2`, { headers: { Authorization: `Bearer ${token}`, "X-Tenant-ID": "t1" } });
    return { status: res.status, body: (await res.json()) as { code?: string; error?: string } };
  };

  it("accepts a well-formed token (the attacks below differ from it in one thing)", async () => {
    expect((await get(signed())).status).toBe(200);
    expect((await get(signed({ exp: now() - 10 }))).status).toBe(200); // expired within the 30 s skew
    const { socket } = await connect(node.url, signed());
    socket.close();
  });

  it.each(attacks)("refuses %s over REST with 401 AUTH_FAILED", async (_label, forge) => {
    const answer = await get(forge());
    expect(answer.status).toBe(401);
    expect(answer.body.code).toBe("AUTH_FAILED");
  });

  it.each(attacks)("refuses %s at the Socket.IO handshake", async (_label, forge) => {
    const err = await refusal(node.url, forge());
    expect(err.data.code).toBe("AUTH_FAILED");
  });
});

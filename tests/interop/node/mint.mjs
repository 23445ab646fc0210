// Mints compact JWS tokens with the `jose` package for channels-jwt's interop tests.
//
// stdin:  {"requests": [{"alg": "RS256", "kid": "k1", "jwk": {private JWK}, "claims": {...}}]}
// stdout: {"tokens": ["eyJ...", ...]}  (one token per request, in order)
import { importJWK, SignJWT } from "jose";

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

async function mint({ alg, kid, jwk, claims }) {
  const key = await importJWK(jwk, alg);
  const header = { alg, typ: "JWT" };
  if (kid !== undefined && kid !== null) {
    header.kid = kid;
  }
  return new SignJWT(claims).setProtectedHeader(header).sign(key);
}

const { requests } = JSON.parse(await readStdin());
const tokens = [];
for (const request of requests) {
  tokens.push(await mint(request));
}
process.stdout.write(JSON.stringify({ tokens }));

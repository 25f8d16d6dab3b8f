// The generated clients over gRPC-Web (binary), to the page's own origin, where the
// server's gateway relays every call to its gRPC port (server/web/gateway.py).
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { CatalogService } from "./gen/bookrec/v1/catalog_pb.js";
import { FeedbackService } from "./gen/bookrec/v1/feedback_pb.js";
import { RecommenderService } from "./gen/bookrec/v1/recommender_pb.js";
import { session } from "./session.js";

// Each call's deadline; the gateway caps it at 30 s.
const TIMEOUT_MS = 8000;

const withKey: Interceptor = (next) => async (req) => {
  const key = session.apiKey();
  if (key) req.header.set("authorization", `Bearer ${key}`);
  return next(req);
};

const transport = createGrpcWebTransport({
  baseUrl: window.location.origin,
  useBinaryFormat: true,
  interceptors: [withKey],
  defaultTimeoutMs: TIMEOUT_MS,
});

export const catalog: Client<typeof CatalogService> = createClient(CatalogService, transport);
export const recommender: Client<typeof RecommenderService> = createClient(
  RecommenderService,
  transport,
);
export const feedback: Client<typeof FeedbackService> = createClient(FeedbackService, transport);

/** What went wrong, in words for a person, and whether trying again may help.
 *  "auth" (no key, or a wrong one) concerns the whole page and is said once, in the
 *  banner; "denied" (this key may not do that) and "request" belong to one action. */
export interface Problem {
  kind: "offline" | "auth" | "denied" | "busy" | "request";
  message: string;
  retry: boolean;
}

/** Sorts any thrown value into a Problem; never exposes a stack trace. */
export function problem(e: unknown): Problem {
  const err = ConnectError.from(e);
  switch (err.code) {
    case Code.Unauthenticated:
      return {
        kind: "auth",
        message:
          "This server needs an API key: paste yours here (make run keeps one in " +
          "data/local-api-key, and its web link carries it).",
        retry: false,
      };
    case Code.PermissionDenied:
      return { kind: "denied", message: `This API key may not do that: ${err.rawMessage}`, retry: false };
    case Code.ResourceExhausted:
      return { kind: "busy", message: "The server is busy; trying again shortly.", retry: true };
    case Code.InvalidArgument:
    case Code.NotFound:
    case Code.FailedPrecondition:
    case Code.OutOfRange:
    case Code.AlreadyExists:
    case Code.Unimplemented:
      return { kind: "request", message: err.rawMessage, retry: false };
    default:
      // Unavailable (stopped, starting, no model loaded yet), deadline, a failed fetch.
      return {
        kind: "offline",
        message:
          "The bookrec server cannot be reached right now: it is stopped, starting or " +
          "loading a model.",
        retry: true,
      };
  }
}

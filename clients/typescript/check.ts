// What a game's TypeScript backend writes against a client generated from
// openapi/openapi.json with openapi-typescript and openapi-fetch. Compiled under
// `tsc --strict` by .ci/typescript, never run: it fails when the document stops giving
// one response type per operation.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

type TurnResponse = components["schemas"]["TurnResponse"];
type TurnStreamEvent = components["schemas"]["TurnStreamEvent"];

const client = createClient<paths>({
  baseUrl: "http://127.0.0.1:8080",
  headers: { Authorization: "Bearer game-key" },
});

/** A player's line, and the character's reply as text. */
export async function say(conversationId: string, content: string): Promise<string> {
  const { data, error } = await client.POST("/conversations/{conversation_id}/messages", {
    params: {
      path: { conversation_id: conversationId },
      header: { "Idempotency-Key": "turn-1" },
    },
    body: {
      player_id: "p-7",
      character_id: "innkeeper_mara",
      content,
      affinity: 35,
      context: { location: "tavern" },
    },
  });
  if (error) {
    throw new Error(`${error.error.code}: ${error.error.message}`);
  }
  const turn: TurnResponse = data;
  const reply: string = data.reply.content;
  const seq: number = turn.reply.seq;
  console.log(seq, turn.fallback_reason ?? "llm");
  return reply;
}

/** The same turn as server-sent events: the raw stream, for the game's own SSE reader. */
export async function sayStreamed(
  conversationId: string,
  content: string,
): Promise<ReadableStream<Uint8Array> | null> {
  const { response, error } = await client.POST(
    "/conversations/{conversation_id}/messages/stream",
    {
      params: { path: { conversation_id: conversationId } },
      body: { player_id: "p-7", character_id: "innkeeper_mara", content },
      parseAs: "stream",
    },
  );
  if (error) {
    throw new Error(`${error.error.code}: ${error.error.message}`);
  }
  return response.body;
}

/** What a game's SSE reader does with one event of the stream route. */
export function onEvent(event: TurnStreamEvent, show: (text: string) => void): TurnResponse | null {
  switch (event.event) {
    case "delta":
      show((JSON.parse(event.data) as { text: string }).text);
      return null;
    case "done":
      return JSON.parse(event.data) as TurnResponse;
    case "typing":
    case "error":
      return null;
  }
}

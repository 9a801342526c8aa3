/**
 * The coordinator's live event stream (Socket.IO namespace `/events`, the same
 * stream `fedmart federation watch` prints): round phases, reports, dropouts,
 * refusals, ledger entries, schedules. Views reload on the events that concern
 * them, so a commit or a ledger entry shows within a second; a slow poll stays
 * on as the fallback when the stream is down.
 */
import { io, type Socket } from 'socket.io-client';
import { wireParser } from '@fedmart/shared/wire-parser';

export interface LiveEvent {
  type: string;
  federationId: string;
  at: string;
  partnerId?: string;
  [k: string]: unknown;
}

type Listener = (e: LiveEvent) => void;

const listeners = new Set<Listener>();
let socket: Socket | null = null;
let connected = false;
const statusListeners = new Set<(up: boolean) => void>();

/** Open the stream for this token (once per sign-in). */
export function openEvents(token: string): void {
  closeEvents();
  socket = io('/events', { auth: { token }, transports: ['websocket'], parser: wireParser, reconnectionDelayMax: 5000 });
  socket.on('connect', () => setStatus(true));
  socket.on('disconnect', () => setStatus(false));
  socket.on('connect_error', () => setStatus(false));
  socket.on('event', (e: LiveEvent) => {
    for (const l of listeners) l(e);
  });
}

export function closeEvents(): void {
  socket?.close();
  socket = null;
  setStatus(false);
}

function setStatus(up: boolean): void {
  connected = up;
  for (const l of statusListeners) l(up);
}

export function eventsConnected(): boolean {
  return connected;
}

export function onEvent(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

export function onEventsStatus(l: (up: boolean) => void): () => void {
  statusListeners.add(l);
  return () => statusListeners.delete(l);
}

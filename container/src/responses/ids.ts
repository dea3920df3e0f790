import { randomBytes } from 'node:crypto';

/**
 * Response and item ids. An item id carries the id of the response that created it
 * (`msg_<response hex><item index hex>`), so an `item_reference` finds its stored response with
 * one read and no index over items.
 */

const RESPONSE_HEX = 32;
const INDEX_HEX = 4;
const ITEM_ID = /^[a-z]+_([0-9a-f]{32})[0-9a-f]{4,8}$/;
const RESPONSE_ID = /^resp_[0-9a-f]{32}$/;

/** A fresh response id (`resp_` + 128 random bits in hex). */
export function newResponseId(): string {
  return `resp_${randomBytes(RESPONSE_HEX / 2).toString('hex')}`;
}

export function isResponseId(id: string): boolean {
  return RESPONSE_ID.test(id);
}

/** Hands out the item ids of one response, in order. */
export class ItemIds {
  private next = 0;
  private readonly hex: string;

  constructor(readonly responseId: string) {
    this.hex = responseId.slice('resp_'.length);
  }

  /** `prefix` is OpenAI's for the item type: `msg`, `fc`, `fco`. */
  take(prefix: 'msg' | 'fc' | 'fco'): string {
    const n = this.next++;
    return `${prefix}_${this.hex}${n.toString(16).padStart(INDEX_HEX, '0')}`;
  }
}

/** The response an item id was created by, or null for ids Tollgate did not issue. */
export function responseIdOfItem(itemId: string): string | null {
  const m = ITEM_ID.exec(itemId);
  return m ? `resp_${m[1]}` : null;
}

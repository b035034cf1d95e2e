/** Placeholder until the view lands (issue 19 work in progress). */
import { h, replace } from '../dom';
import type { ViewContext } from '../view';

export async function yieldView(ctx: ViewContext): Promise<void> {
  replace(ctx.main, h('h1', null, 'yield'));
}

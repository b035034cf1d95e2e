/** The sign-in form: a local account's user name and password, exchanged for a bearer token. */
import { field, h, replace } from '../dom';
import { signIn } from '../session';

export async function signInView(main: HTMLElement, done: () => void): Promise<void> {
  const error = h('p', { class: 'error', role: 'alert', id: 'sign-in-error' });
  const form = h(
    'form',
    { class: 'sign-in', 'aria-labelledby': 'sign-in-title' },
    h('h1', { id: 'sign-in-title' }, 'Sign in to Holdfast'),
    h('label', { for: 'username' }, 'User name'),
    h('input', { id: 'username', name: 'username', autocomplete: 'username', required: true, autofocus: true }),
    h('label', { for: 'password' }, 'Password'),
    h('input', {
      id: 'password',
      name: 'password',
      type: 'password',
      autocomplete: 'current-password',
      required: true,
    }),
    h('button', { type: 'submit' }, 'Sign in'),
    error,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    error.textContent = '';
    signIn(field(form, 'username'), field(form, 'password'))
      .then(done)
      .catch((err: unknown) => {
        error.textContent = err instanceof Error ? err.message : String(err);
      });
  });
  replace(main, form);
  (form.querySelector('#username') as HTMLInputElement).focus();
}

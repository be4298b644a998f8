/** The sign-in form: user, device, optional token; it shows why a sign-in failed. */
import { type Credentials, ID_PATTERN } from '../credentials.js';
import { byId, setText } from './dom.js';

export class SignInForm {
  private readonly root = byId('sign-in');
  private readonly form = byId<HTMLFormElement>('sign-in-form');
  private readonly user = byId<HTMLInputElement>('sign-in-user');
  private readonly device = byId<HTMLInputElement>('sign-in-device');
  private readonly token = byId<HTMLInputElement>('sign-in-token');
  private readonly error = byId('sign-in-error');
  private readonly submit = byId<HTMLButtonElement>('sign-in-submit');

  constructor(onSubmit: (credentials: Credentials) => void) {
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      const credentials: Credentials = {
        user: this.user.value.trim(),
        device: this.device.value.trim(),
        token: this.token.value.trim(),
      };
      const problem = check(credentials);
      if (problem) {
        this.showError(problem);
        return;
      }
      this.showError('');
      onSubmit(credentials);
    });
  }

  show(prefill: Partial<Credentials>, error = ''): void {
    this.user.value = prefill.user ?? '';
    this.device.value = prefill.device ?? '';
    this.token.value = prefill.token ?? '';
    this.setBusy(false);
    this.showError(error);
    this.root.hidden = false;
    (this.user.value ? this.token : this.user).focus();
  }

  hide(): void {
    this.root.hidden = true;
  }

  setBusy(busy: boolean): void {
    this.submit.disabled = busy;
    this.submit.textContent = busy ? 'Signing in…' : 'Sign in';
  }

  showError(message: string): void {
    setText(this.error, message);
  }
}

function check({ user, device }: Credentials): string {
  const rule = "letters, digits, '.', '_' or '-' (up to 64, starting with a letter or digit)";
  if (!user) return 'Enter your user name.';
  if (!ID_PATTERN.test(user)) return `User: use ${rule}.`;
  if (!ID_PATTERN.test(device)) return `Device: use ${rule}.`;
  return '';
}

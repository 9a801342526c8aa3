import { Fragment } from 'preact';
import type { FederationConfig } from '@fedmart/shared/protocol';
import { describeFederationTerms } from '@fedmart/shared/terms-in-words';

/** A federation's terms in words: what a partner consents to (the same lines `fedmart partner consent --show` prints). */
export function Terms(props: { config: FederationConfig }) {
  return (
    <dl class="terms">
      {describeFederationTerms(props.config).map((t) => (
        <Fragment key={t.label}><dt>{t.label}</dt><dd>{t.text}</dd></Fragment>
      ))}
    </dl>
  );
}

// Context variables: Python's contextvars for aiocpp's tasks and callbacks.
//
// A ContextVar<T> has one value per Context. Every thread has a current
// context; a task runs in a copy of the context that was current when it was
// created (or the one given to create_task), so values set inside a task are
// its own. A Context is copy-on-write: copy_context() is cheap, and a set()
// replaces the map of the current context only.
//
//   aio::ContextVar<std::string> request_id("request_id", "-");
//   request_id.set("42");            // in this task's context
//   loop.call_soon(aio::copy_context(), [] { log(request_id.get()); });
//
// Callbacks given a Context run inside it (Context::run). Without one, a
// callback scheduled while some variable has a value runs in a copy of the
// scheduling context, as asyncio's; while none has any, it runs in the
// thread's current context, which is then indistinguishable (and costs
// nothing).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace aio {

// A ContextVar without a value and without a default (Python's LookupError).
class LookupError : public std::out_of_range {
 public:
  using std::out_of_range::out_of_range;
};

namespace detail {

// The variables of one context: immutable once shared, replaced on write.
using ContextVars = std::map<std::uint64_t, std::shared_ptr<const void>>;

struct ContextImpl {
  std::shared_ptr<const ContextVars> vars;  // null: no variable has a value
  bool entered = false;
};

// The context current on this thread (the thread's own one outside any run()).
ContextImpl& current_context() noexcept;
// True when the current context holds a value for some variable.
bool current_context_has_values() noexcept;
std::shared_ptr<ContextImpl> copy_current_context();
std::uint64_t next_context_var_id() noexcept;

// Makes `context` current for its lifetime (null: leaves the current one).
// Throws std::runtime_error if `context` is already entered, as Python's
// Context.run does.
class ContextScope {
 public:
  explicit ContextScope(ContextImpl* context);
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;
  ~ContextScope();

 private:
  ContextImpl* entered_;
  ContextImpl* previous_ = nullptr;
};

}  // namespace detail

class Context {
 public:
  // A new, empty context (Python's contextvars.Context()).
  Context() : impl_(std::make_shared<detail::ContextImpl>()) {}
  explicit Context(std::shared_ptr<detail::ContextImpl> impl) noexcept : impl_(std::move(impl)) {}

  // Calls f(args...) with this context current and returns what it returns.
  // Changes to variables made by f stay in this context. Throws
  // std::runtime_error if the context is entered already (on any thread).
  template <class F, class... Args>
  decltype(auto) run(F&& f, Args&&... args) {
    detail::ContextScope scope(impl_.get());
    return std::invoke(std::forward<F>(f), std::forward<Args>(args)...);
  }

  // A new context with the same values (Context.copy()).
  Context copy() const {
    auto copy = std::make_shared<detail::ContextImpl>();
    copy->vars = impl_->vars;
    return Context(std::move(copy));
  }

  // Number of variables with a value here (len(context)).
  std::size_t size() const noexcept { return impl_->vars ? impl_->vars->size() : 0; }

  const std::shared_ptr<detail::ContextImpl>& impl() const noexcept { return impl_; }
  friend bool operator==(const Context& a, const Context& b) noexcept { return a.impl_ == b.impl_; }

 private:
  std::shared_ptr<detail::ContextImpl> impl_;
};

// A copy of the current context (contextvars.copy_context()).
inline Context copy_context() { return Context(detail::copy_current_context()); }

// What ContextVar::set returns, for reset().
template <class T>
class ContextToken {
 public:
  // The value before set(), or empty if there was none (Token.old_value / MISSING).
  const std::optional<T>& old_value() const noexcept { return old_; }

 private:
  template <class>
  friend class ContextVar;
  ContextToken(std::uint64_t var, const detail::ContextImpl* context, std::optional<T> old)
      : var_(var), context_(context), old_(std::move(old)) {}
  std::uint64_t var_;
  const detail::ContextImpl* context_;
  std::optional<T> old_;
  bool used_ = false;
};

template <class T>
class ContextVar {
  static_assert(std::is_copy_constructible_v<T>, "ContextVar<T> needs a copyable T");

 public:
  using Token = ContextToken<T>;

  explicit ContextVar(std::string name) : name_(std::move(name)), id_(detail::next_context_var_id()) {}
  ContextVar(std::string name, T default_value)
      : name_(std::move(name)), default_(std::move(default_value)), id_(detail::next_context_var_id()) {}

  const std::string& name() const noexcept { return name_; }

  // The value in the current context, else the default; LookupError if neither.
  T get() const {
    if (const T* value = find()) return *value;
    if (default_) return *default_;
    throw LookupError("ContextVar '" + name_ + "' has no value in this context and no default");
  }
  // The value in the current context, else `fallback` (get(default)).
  T get(T fallback) const {
    if (const T* value = find()) return *value;
    return fallback;
  }

  // Sets the value in the current context; the token undoes it (reset).
  Token set(T value) {
    detail::ContextImpl& context = detail::current_context();
    const T* old = find();
    Token token(id_, &context, old ? std::optional<T>(*old) : std::nullopt);
    store(context, std::make_shared<const T>(std::move(value)));
    return token;
  }

  // Restores the value from before the set() that gave `token`. Throws
  // std::invalid_argument for a token of another variable or context, and
  // std::runtime_error for one used already.
  void reset(Token& token) {
    detail::ContextImpl& context = detail::current_context();
    if (token.var_ != id_) throw std::invalid_argument("ContextVar.reset: the token was created by another variable");
    if (token.context_ != &context)
      throw std::invalid_argument("ContextVar.reset: the token was created in a different Context");
    if (token.used_) throw std::runtime_error("ContextVar.reset: the token has already been used once");
    token.used_ = true;
    store(context, token.old_ ? std::make_shared<const T>(*token.old_) : nullptr);
  }

 private:
  const T* find() const {
    const auto& vars = detail::current_context().vars;
    if (!vars) return nullptr;
    auto it = vars->find(id_);
    return it == vars->end() ? nullptr : static_cast<const T*>(it->second.get());
  }
  // Copy on write: contexts sharing the old map keep it.
  void store(detail::ContextImpl& context, std::shared_ptr<const T> value) {
    auto vars =
        context.vars ? std::make_shared<detail::ContextVars>(*context.vars) : std::make_shared<detail::ContextVars>();
    if (value)
      (*vars)[id_] = std::move(value);
    else
      vars->erase(id_);
    if (vars->empty())
      context.vars.reset();
    else
      context.vars = std::move(vars);
  }

  std::string name_;
  std::optional<T> default_;
  std::uint64_t id_;
};

}  // namespace aio
